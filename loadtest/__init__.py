"""The load tool: an open-loop generator, the traffic model, capacity and its report.

- ``openloop``: one process's open-loop generator (latency measured from schedule);
- ``traffic``, ``profile``: who calls what, how often, and the daily profile (plain data
  in ``data/``);
- ``targets``: where load goes (the hub; the gateway's place is marked);
- ``runner``: several generator processes, their histograms merged;
- ``capacity``: the search for the highest rate within a latency objective;
- ``report``: projections per day, savings, the published volumes beside them;
- ``cli``: ``ngsp load``; ``locustfile``: the same model for Locust users.

Nothing is imported here: ``ngsp`` loads ``loadtest.cli`` at start, and the heavy parts
(aiohttp, the population model) only when a run begins.
"""
