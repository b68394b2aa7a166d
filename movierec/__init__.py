"""movierec: collaborative filtering on explicit ratings, shared by the trainer and the service.

The core imports neither FastAPI nor a training loop. Modules that need Keras (`models`, `export`)
import it themselves so that the service, which scores from exported arrays, never pays for it.
"""

__version__ = "0.1.0"
