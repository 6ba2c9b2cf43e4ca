"""Question definitions, one module per lab (``lab01`` ... ``lab05``), each defining ``LAB``.

Every reference wraps coursekit (``functional``, ``optim``, ``snn``, ``data``) so the maths exists
once; the wrappers only adapt the student-facing signature (NumPy in, NumPy out).
"""
