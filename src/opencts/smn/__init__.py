"""SMN v2 (Simple Message Notification), the subset CTS needs: topics, subscriptions, publishing, and a
durable outbox that delivers by email, SMS and signed HTTP(S) with retries, dead letters and restarts.
"""
