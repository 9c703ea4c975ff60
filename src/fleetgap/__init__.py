"""fleetgap: Elastic Fleet for networks with no internet access."""

__version__ = "0.1.0"
