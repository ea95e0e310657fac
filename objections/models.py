"""Cases, evidence and the workflow engine arrive with the case issue."""
