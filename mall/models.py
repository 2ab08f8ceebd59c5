from mall.models_payments import *  # noqa: F401,F403
