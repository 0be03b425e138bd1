"""A hyperparameter search of my training task: one model per configuration of a grid.

Run it with `python search.py`: it prints the best configuration and its validation RMSE (minutes).
"""

from prefect import flow, unmapped  # [08:]
from prefect.artifacts import create_table_artifact  # [08:]

from orchestrate import add_features, read_data, train_best_model

# The xgboost parameters to try: 3 depths x 2 learning rates = 6 configurations.
GRID = [{"max_depth": depth, "learning_rate": rate} for depth in (4, 6, 8) for rate in (0.3, 0.5)]


@flow(log_prints=True)  # [08:]
def grid_search(grid: list[dict] | None = None, train_month: str = "2023-01", val_month: str = "2023-02",
                source: str = "auto", num_boost_round: int | None = None) -> list[dict]:
    """Train one model per configuration of `grid` (default: GRID); return them with their RMSE, best first."""
    grid = GRID if grid is None else grid
    # One step after the other, as plain functions (.fn): no task runs, nothing in parallel.  # [:07]
    df_train = read_data.fn(train_month, source=source)  # [:07]
    df_val = read_data.fn(val_month, source=source)  # [:07]
    X_train, X_val, y_train, y_val = add_features.fn(df_train, df_val)  # [:07]
    rmses = [train_best_model.fn(X_train, X_val, y_train, y_val, num_boost_round=num_boost_round, params=config)  # [:07]
             for config in grid]  # [:07]
    # The two months load at the same time; add_features, given their futures, waits for both.  # [08:]
    df_train = read_data.submit(train_month, source=source)  # [08:]
    df_val = read_data.submit(val_month, source=source)  # [08:]
    X_train, X_val, y_train, y_val = add_features(df_train, df_val)  # [08:]
    # One training per configuration, all submitted at once; the features go whole to every run.  # [08:]
    rmses = train_best_model.map(unmapped(X_train), unmapped(X_val), unmapped(y_train), unmapped(y_val),  # [08:]
                                 num_boost_round=num_boost_round, params=grid).result()  # [08:]
    rows = sorted(({**config, "rmse": rmse} for config, rmse in zip(grid, rmses)), key=lambda row: row["rmse"])
    create_table_artifact(key="grid-search", table=rows,  # [08:]
                          description="Validation RMSE (minutes) of each configuration, best first")  # [08:]
    print(f"best of {len(rows)}: {rows[0]}")
    return rows


if __name__ == "__main__":
    grid_search()
