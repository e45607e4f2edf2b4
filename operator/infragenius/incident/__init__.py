"""IncidentReport: a timeline, ranked suspected causes and a postmortem draft from one snapshot."""
