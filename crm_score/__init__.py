"""crm_score."""
