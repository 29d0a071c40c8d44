"""Delivery channels: outbox file, SendGrid email, Twilio SMS, FCM push, signed webhooks."""
