"""The Gatehouse operator CLI and local stack. Never deployed to Lambda."""
