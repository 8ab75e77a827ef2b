"""Intermediate rewards for goal-reaching: exact value-iteration counts (``mdp``), MiniGrid
environments with one-way intermediate rewards and tabular Q-learning (``minigrid``)."""
