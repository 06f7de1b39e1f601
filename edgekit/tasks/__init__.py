"""Tasks: data generators and metrics for the demo models (Sudoku, Maze, digits for DEQ)."""
