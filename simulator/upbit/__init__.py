"""The Upbit protocol: REST, WebSocket, and the private order API that Bithumb shares."""
