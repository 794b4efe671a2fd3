"""Swarms: several model calls behind one request — fanout, vote, majority, synthesis, pipeline, debate.

Everything here runs over the gateway's routing seam and the Backend protocol; nothing imports the
HTTP layer. Every agent, judge and aggregator call goes through ``SwarmRunner.call``.
"""
