"""Operator tasks: customers are assigned to operators instead of operators searching for them."""
