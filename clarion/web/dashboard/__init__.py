"""The operator dashboard at ``/dashboard`` (docs/dashboard.md): server-rendered pages
over the services, signed in with an API key once, then a session cookie."""
