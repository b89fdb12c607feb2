"""Call recordings (issue 11): encrypted store, spool mover, retention sweeper, transcripts
and the QA index (see ``recordings/README.md``)."""
