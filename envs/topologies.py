"""Real backbone topologies as data: node names, coordinates and link lists, turned into ``networkx`` graphs.

* ``abilene``: the Internet2 Abilene backbone as published in SNDlib [1] (instance ``abilene``: 12 nodes,
  15 undirected links; the same network is ``Abilene`` in the Internet Topology Zoo [2]). Node names and
  (longitude, latitude) are SNDlib's; ``ATLAM5`` is the second Atlanta PoP (Atlanta M5 facility).
* ``nsfnet``: the 14-node, 21-link NSFNET T1 backbone (1991) as used throughout the optical / NFV
  literature (e.g. [3]); coordinates are those of the host cities (public geographic data).

Link propagation delay = great-circle (haversine, Earth radius 6371 km) distance / (2e8 m/s), the speed of
light in fibre (refractive index ~1.5) [4]. Great-circle distance is a lower bound on the fibre length.

References
1. S. Orlowski, R. Wessäly, M. Pióro, A. Tomaszewski, "SNDlib 1.0 — Survivable Network Design Library",
   Networks 55(3), 2010; http://sndlib.zib.de (instance abilene).
2. S. Knight, H. X. Nguyen, N. Falkner, R. Bowden, M. Roughan, "The Internet Topology Zoo", IEEE JSAC 29(9),
   2011; http://www.topology-zoo.org (Abilene).
3. B. Mukherjee, "Optical WDM Networks", Springer, 2006 (the 14-node NSFNET reference topology).
4. G. P. Agrawal, "Fiber-Optic Communication Systems", 4th ed., Wiley, 2010 (group index ~1.5: ~5 us/km).
"""

from __future__ import annotations

import math

import networkx as nx

__all__ = ["TOPOLOGIES", "great_circle_km", "topology_graph"]

EARTH_RADIUS_KM = 6371.0
FIBRE_SPEED_M_S = 2e8

# name -> (nodes: ((name, longitude, latitude), ...), links: ((a, b), ...))
TOPOLOGIES: dict[str, tuple[tuple[tuple[str, float, float], ...], tuple[tuple[str, str], ...]]] = {
    "abilene": (
        (("ATLAM5", -84.3833, 33.75), ("ATLAng", -85.5, 34.5), ("CHINng", -87.6167, 41.8333),
         ("DNVRng", -105.0, 40.75), ("HSTNng", -95.517364, 29.770764), ("IPLSng", -86.159535, 39.780622),
         ("KSCYng", -96.596704, 38.961694), ("LOSAng", -118.25, 34.05), ("NYCMng", -73.9667, 40.7833),
         ("SNVAng", -122.02553, 37.38575), ("STTLng", -122.3, 47.6), ("WASHng", -77.026842, 38.897303)),
        (("ATLAM5", "ATLAng"), ("ATLAng", "HSTNng"), ("ATLAng", "IPLSng"), ("ATLAng", "WASHng"),
         ("CHINng", "IPLSng"), ("CHINng", "NYCMng"), ("DNVRng", "KSCYng"), ("DNVRng", "SNVAng"),
         ("DNVRng", "STTLng"), ("HSTNng", "KSCYng"), ("HSTNng", "LOSAng"), ("IPLSng", "KSCYng"),
         ("LOSAng", "SNVAng"), ("NYCMng", "WASHng"), ("SNVAng", "STTLng")),
    ),
    "nsfnet": (
        (("Seattle", -122.33, 47.61), ("PaloAlto", -122.14, 37.44), ("SanDiego", -117.16, 32.72),
         ("SaltLakeCity", -111.89, 40.76), ("Boulder", -105.27, 40.01), ("Houston", -95.37, 29.76),
         ("Lincoln", -96.70, 40.81), ("Champaign", -88.24, 40.12), ("Pittsburgh", -79.99, 40.44),
         ("Atlanta", -84.39, 33.75), ("AnnArbor", -83.74, 42.28), ("Ithaca", -76.50, 42.44),
         ("Princeton", -74.66, 40.35), ("CollegePark", -76.94, 38.99)),
        (("Seattle", "PaloAlto"), ("Seattle", "SanDiego"), ("Seattle", "Champaign"), ("PaloAlto", "SanDiego"),
         ("PaloAlto", "SaltLakeCity"), ("SanDiego", "Houston"), ("SaltLakeCity", "Boulder"),
         ("SaltLakeCity", "AnnArbor"), ("Boulder", "Houston"), ("Boulder", "Lincoln"), ("Houston", "Atlanta"),
         ("Houston", "CollegePark"), ("Lincoln", "Champaign"), ("Champaign", "Pittsburgh"),
         ("Pittsburgh", "Atlanta"), ("Pittsburgh", "Ithaca"), ("Pittsburgh", "Princeton"),
         ("AnnArbor", "Ithaca"), ("AnnArbor", "Princeton"), ("Ithaca", "CollegePark"),
         ("Princeton", "CollegePark")),
    ),
}


def great_circle_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine great-circle distance (km) between two (longitude, latitude) points in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def topology_graph(name: str) -> nx.Graph:
    """The topology as an undirected graph on nodes ``0..n-1`` (attributes ``name``, ``lon``, ``lat``); each
    edge carries ``idx`` (link index, in the order of the link list), ``km`` and ``delay_ms`` (propagation)."""
    if name not in TOPOLOGIES:
        raise ValueError(f"topology={name!r} is unknown; allowed: {', '.join(TOPOLOGIES)}")
    nodes, links = TOPOLOGIES[name]
    index = {n: i for i, (n, _, _) in enumerate(nodes)}
    g = nx.Graph(name=name)
    for i, (n, lon, lat) in enumerate(nodes):
        g.add_node(i, name=n, lon=lon, lat=lat)
    for e, (a, b) in enumerate(links):
        (_, lo1, la1), (_, lo2, la2) = nodes[index[a]], nodes[index[b]]
        km = great_circle_km(lo1, la1, lo2, la2)
        g.add_edge(index[a], index[b], idx=e, km=km, delay_ms=km * 1e3 / FIBRE_SPEED_M_S * 1e3)
    return g
