"""The HTTP API for SOC analysts, agency IT and compliance teams (FastAPI)."""
