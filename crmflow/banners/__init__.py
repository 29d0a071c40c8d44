"""Personalised banners (千人千面): marketer config -> one creative per user and slot."""
