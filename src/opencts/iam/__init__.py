"""Identity: domains, projects, users, groups, AK/SK credentials, signatures and tokens."""
