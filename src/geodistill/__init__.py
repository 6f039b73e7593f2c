"""GeoDistill replication."""
__version__ = "0.1.0"

LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"     # every process's log lines, seed workers included
