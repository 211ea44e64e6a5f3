"""Sample tasks for bgproc: `bgproc register sample_tasks.activities`."""
