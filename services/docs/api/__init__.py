"""The docs service's HTTP API: documents, meetings, report schedules."""
