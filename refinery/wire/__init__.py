"""The wire layer: request bodies, the HTTP transport, the Responses client, vector stores."""
