"""Invoice intake: parsing (``parsing/``), and the API, storage and rules built on it."""
