"""The WSGI entry point gunicorn serves: the app for ``$OPT_ML_DIR/model`` (``/opt/ml/model`` on SageMaker)."""
from inference.predictor import create_app

app = create_app()
