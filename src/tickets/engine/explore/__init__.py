"""``tickets explore``: every interleaving of a few buyers, systematically.

Random sales find races by luck; the explorer drives the buyers' switch
points itself (tickets.engine.explore.scheduler), runs every distinct
schedule of a few buyers, or a PCT sample of them
(tickets.engine.explore.search), judges each as a sale, and when one
fails shrinks it (fewest buyers, then fewest preemptions) and saves it as a
schedule file that ``tickets explore --replay`` runs again step for step.
"""
