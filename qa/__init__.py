"""Quality assurance of recorded calls (issue 11): the rubric's scoring arithmetic and the
pre-filled scorecard (pure logic on transcripts and call records, no I/O)."""
