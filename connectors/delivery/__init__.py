"""Delivery events from providers: webhook signature checks, the landing envelope format, a receiver."""
