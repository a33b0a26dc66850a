"""Tests against the three-machine cluster of scripts/cluster.sh (scripts/test.sh --cluster)."""
