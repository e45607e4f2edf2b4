"""`infragenius serve`: an MCP server and a JSON API over one set of service functions (issue 16).

The faces (mcp_face, http_face) translate protocols; service.py holds every decision; authentication,
rate limits and the audit trail are pieces the service and the HTTP middleware call.
"""
