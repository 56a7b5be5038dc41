"""Reports of the group's history posted to Discord: the summary of one period
(`summary`), the webhook client (`discord`) and the once-per-period job (`job`)."""
