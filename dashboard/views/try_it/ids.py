"""Component ids of the Try it page (``/try``), apart from the shared ``dashboard/ids.py``; tests import them."""

TRY_RUN, TRY_TEXT, TRY_ANALYSE, TRY_EXAMPLE = "try-run", "try-text", "try-analyse", "try-example"
TRY_MESSAGE, TRY_INFO, TRY_REQUEST, TRY_RESULT = "try-message", "try-info", "try-request", "try-result"
TRY_PREDICTION, TRY_TOKENS = "try-prediction", "try-tokens"
TRY_STATES_CARD, TRY_LAYER, TRY_DIR, TRY_STATE = "try-states-card", "try-layer", "try-dir", "try-state"
TRY_HEATMAP, TRY_HEAT_NOTE = "try-heatmap", "try-heat-note"
TRY_EVOLUTION_CARD, TRY_EVOLUTION = "try-evolution-card", "try-evolution"
TRY_GUESSES_CARD, TRY_GUESSES = "try-guesses-card", "try-guesses"
TRY_GEN_CARD, TRY_TEMPERATURE, TRY_LENGTH, TRY_SEED = "try-gen-card", "try-temperature", "try-length", "try-seed"
TRY_TEACHER, TRY_GENERATE, TRY_GEN_OUT, TRY_GEN_MESSAGE = "try-teacher", "try-generate", "try-gen-out", "try-gen-msg"
TRY_INTERVAL = "try-interval"
TRY_ATTENTION = "try-attention"  # an encoder-decoder's attention matrix (inside the prediction)
