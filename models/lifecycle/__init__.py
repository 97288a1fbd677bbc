"""Account lifecycle (docs/lifecycle.md): owner transfer, time-limited access, access reviews.

Each function takes one decision in the caller's transaction and returns plain results (who
to tell what); none sends anything, commits, or rolls the caller's session back.
"""
