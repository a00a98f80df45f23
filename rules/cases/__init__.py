"""Cases: the closed loop of rectification (问题整改清单) that alerts open. Pure.

``policy`` says which alerts open a case and how long a case must stay quiet before it can be
closed as verified; ``machine`` is the case state machine (every transition returns the new
case and a history entry, or a refusal with its reason); ``access`` says who may see and do
what. The console (``console/``) stores cases and renders them; it decides nothing itself.
"""
