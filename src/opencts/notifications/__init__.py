"""CTS key-event notifications: the API's model and store, the compiled matcher, and the notifier consumer
that publishes alarms to SMN."""
