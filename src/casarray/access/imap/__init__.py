"""The IMAP access service: a sans-IO protocol core (`parser`, `session`) and a thin
asyncio server around it (`server`)."""
