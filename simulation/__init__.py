"""Scenarios in virtual time: a year of national traffic through the hub's own logic.

``ngsp simulate vn-2020`` runs a scenario file (roster, demand, profiles, growth) with a
virtual clock through the hub's routing, grants, ledger and savings, writes a ledger
database of its own, and sets the result beside the published figures.
"""

from simulation.cli import simulate, simulate_report
from simulation.scenario import ScenarioError, load_scenario

__all__ = ["ScenarioError", "load_scenario", "simulate", "simulate_report"]
