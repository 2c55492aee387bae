"""Built-in tasks: data, default spec and description of each. Data loaders import lazily."""
from .registry import CODE_VOCAB, TASKS, TaskInfo, get_task

__all__ = ["TASKS", "TaskInfo", "get_task", "CODE_VOCAB"]
