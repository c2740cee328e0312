"""Endpoint kinds: what a reported number means and how the models treat it.

An endpoint kind fixes which columns a row must carry, the link scale the
latent effects live on, and whether a model family can fit it yet.  Known
endpoint names (``tumor_volume``, ``survival`` ...) map to a kind and a benefit
direction so users may leave ``kind`` and ``better`` empty for them.

This module is a registry of facts; it computes nothing and imports no
modelling library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointKind:
    name: str
    description: str
    link: str                 # scale the latent arm effects live on
    needs: str                # "mean+dispersion" or "percent"
    fitted: bool              # can the factorial model fit it today?


KINDS: dict[str, EndpointKind] = {
    "positive": EndpointKind(
        "positive",
        "positive continuous value per animal (volume, weight, concentration); "
        "reported as mean with SD or SE",
        link="log", needs="mean+dispersion", fitted=True),
    "rate": EndpointKind(
        "rate",
        "share of animals with an event by a day (% alive at day 40); reported in 'percent'",
        link="logit", needs="percent", fitted=False),
    "percent": EndpointKind(
        "percent",
        "bounded percentage measured per sample (% lysis); reported as mean with SD or SE in 0-100",
        link="logit", needs="mean+dispersion", fitted=False),
}

BETTER = ("lower", "higher")

# name -> (kind, better).  Names are matched after lower-casing and turning
# spaces and hyphens into underscores.
KNOWN_ENDPOINTS: dict[str, tuple[str, str]] = {
    "tumor_volume": ("positive", "lower"),
    "tumour_volume": ("positive", "lower"),
    "tumor_weight": ("positive", "lower"),
    "tumour_weight": ("positive", "lower"),
    "ifn_gamma": ("positive", "higher"),
    "survival": ("rate", "higher"),
    "nk_lysis": ("percent", "higher"),
}


def normalise_endpoint_name(name: str) -> str:
    """Canonical spelling used to look a name up in :data:`KNOWN_ENDPOINTS`."""
    return "_".join(name.strip().lower().replace("-", " ").split())
