"""Operating a cluster: `cim up` (launcher, services) and `cim status`."""
