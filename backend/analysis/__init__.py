"""Pure analyses of recorded runs (numpy, scipy, scikit-learn, openTSNE; never torch): Gabor fits, cell
selection and matching, projections; and the projection worker process."""
