"""One module per framework, each turning that framework's objects (or files) into a candidate.

The registry (:mod:`reference.verify.registry`) finds them; each needs the protocol
(:mod:`reference.verify.candidates`) and nothing of another adapter. torch's adapter is
``torch_impl.compare``.
"""
