"""The app's training jobs: a queue on the server, each job in its own process.

| module | owns |
|---|---|
| ``queue.py`` | ``JobQueue``: one job at a time, positions, size limit, owners, persistence, supervising the child |
| ``job.py`` | what a job is: its states, the files of its folder, the server's record (``Job``), atomic JSON writes |
| ``runner.py`` | the child: ``python -m hub.jobs.runner JOB_FOLDER`` writes events, log and result files |
| ``pipeline.py`` | what a job does: fine-tune if needed, distill, benchmark in a fresh process |
| ``soup_job.py`` | the model-soup job: average finished students, score and benchmark the soup |
| ``params.py`` | job parameters: ``hub.config.JobSettings`` plus the cross-field checks, the data source |
| ``estimate.py`` | the cost estimate from the chosen data and measured rates |
| ``estimate_rates.py`` | what the estimate rests on: the default guesses, the rates and phase times measured here |
| ``registry.py`` | the trained models a browser may use, teacher references, display names |
| ``uploads.py`` | uploaded data files, checked and staged |

Nothing here imports gradio; importing this package imports no torch (only the
child process does). The names below are what ``app.py`` uses.
"""

from ..config import UPLOAD_SUFFIXES
from .estimate import estimate, plan_steps
from .estimate_rates import (CACHE_READ, DEFAULT_GUESS, DEFAULT_PHASES, DEFAULT_RATES, KIND_RATES, MEASURED, OVERHEAD_S,
                             earlier_phases, measured_rates)
from .params import (PARAMS, STAGE_NAMES, STUDENT_PRESET_NAMES, Param, ParamsError, data_kwargs, job_stages,
                     resolve_data, safe_name, validate_params)
from .job import ACTIVE_STATES, FAILED, FINAL_STATES, FINISHED, LOSS_CURVES, QUEUED, RUNNING, STOPPED
from .queue import DuplicateJob, JobActive, JobQueue, QueueFull, default_queue, delete_job_models
from .registry import (ModelEntry, allowed_models, default_pair, general_students, onnx_variants, resolve_teacher,
                       short_name,
                       trained_models)
from .soup_job import MAX_INGREDIENTS, soup_estimate, soup_students, validate_soup_params
from .uploads import (MAX_UPLOAD_ROWS, new_upload_dir, read_upload, stage_selection_upload, stage_squad_upload,
                      stage_upload, uploads_root)

__all__ = [
    "ACTIVE_STATES",
    "CACHE_READ",
    "DEFAULT_GUESS",
    "DEFAULT_PHASES",
    "DEFAULT_RATES",
    "KIND_RATES",
    "FAILED",
    "FINAL_STATES",
    "FINISHED",
    "LOSS_CURVES",
    "MAX_INGREDIENTS",
    "MAX_UPLOAD_ROWS",
    "MEASURED",
    "OVERHEAD_S",
    "PARAMS",
    "QUEUED",
    "RUNNING",
    "STAGE_NAMES",
    "STOPPED",
    "STUDENT_PRESET_NAMES",
    "UPLOAD_SUFFIXES",
    "DuplicateJob",
    "JobActive",
    "JobQueue",
    "ModelEntry",
    "Param",
    "ParamsError",
    "QueueFull",
    "allowed_models",
    "data_kwargs",
    "default_pair",
    "default_queue",
    "delete_job_models",
    "earlier_phases",
    "estimate",
    "general_students",
    "job_stages",
    "measured_rates",
    "onnx_variants",
    "plan_steps",
    "resolve_data",
    "resolve_teacher",
    "safe_name",
    "short_name",
    "soup_estimate",
    "soup_students",
    "new_upload_dir",
    "read_upload",
    "stage_selection_upload",
    "stage_squad_upload",
    "stage_upload",
    "uploads_root",
    "trained_models",
    "validate_params",
    "validate_soup_params",
]
