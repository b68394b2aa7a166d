"""Domain errors: raised by the core, mapped to CLI messages by the trainer and to HTTP by the service."""

from __future__ import annotations


class MovieRecError(Exception):
    """Base class of every error the core raises on purpose."""

    code = "movierec_error"


class DataError(MovieRecError):
    """Ratings data that cannot be read or does not pass validation."""

    code = "invalid_data"


class UnknownLayoutError(DataError):
    """A directory holds no recognisable MovieLens layout."""

    code = "unknown_layout"


class DownloadError(MovieRecError):
    """A data set could not be downloaded, verified or unpacked."""

    code = "download_failed"


class ArtifactError(MovieRecError):
    """An artifact directory is missing, incomplete, corrupt or of an unsupported schema."""

    code = "invalid_artifact"


class UnknownUserError(MovieRecError):
    """A user id that the model has not seen."""

    code = "unknown_user"

    def __init__(self, user_id: int, where: str = "") -> None:
        super().__init__(f"{where}unknown user_id {user_id}: the model was not trained on this user")
        self.user_id = user_id


class UnknownMovieError(MovieRecError):
    """A movie id that the model or catalogue does not know."""

    code = "unknown_movie"

    def __init__(self, movie_id: int, where: str = "") -> None:
        super().__init__(f"{where}unknown movie_id {movie_id}: the model was not trained on this movie")
        self.movie_id = movie_id


class UnknownGenreError(MovieRecError):
    """A genre filter naming no genre of the catalogue."""

    code = "unknown_genre"


class UnsupportedOperationError(MovieRecError):
    """The loaded model kind cannot answer this question (e.g. bias ranking without biases)."""

    code = "unsupported_for_model"


class InvalidRequestError(MovieRecError):
    """A request that is well-formed but semantically invalid (e.g. duplicate movies in a fold-in)."""

    code = "invalid_request"
