"""creditdesk integration tests: run with /usr/bin/python3 -m tests.integration.run."""
