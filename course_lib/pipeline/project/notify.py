"""Train, then email the validation RMSE: the message goes through the SMTP server of a Prefect block.

Run it with `python notify.py ADDRESS`: it trains on the default months and emails the RMSE to ADDRESS.
"""

import sys

from prefect import flow  # [09:]
from prefect_email import EmailServerCredentials, email_send_message  # [09:]

from orchestrate import main_flow


@flow  # [09:]
def train_and_email(email_to: str, train_month: str = "2023-01", val_month: str = "2023-02", source: str = "auto",
                    mode: str = "fast", num_boost_round: int | None = None, email_block: str = "taxi-email") -> float:
    """Train (main_flow), then email the validation RMSE to `email_to` through the SMTP server of block `email_block`."""
    rmse = main_flow(train_month, val_month, source=source, mode=mode, num_boost_round=num_boost_round)
    credentials = EmailServerCredentials.load(email_block)  # [09:]
    # email_send_message is an async task: in this sync flow, .submit() runs it and .result() waits until it is sent.  # [09:]
    email_send_message.submit(  # [09:]
        email_server_credentials=credentials,  # [09:]
        subject=f"Taxi model: validation RMSE {rmse:.5f}",  # [09:]
        msg=f"Trained on {train_month}, validated on {val_month}: RMSE {rmse:.5f} minutes.",  # [09:]
        email_to=email_to,  # [09:]
    ).result()  # [09:]
    return rmse


if __name__ == "__main__":
    train_and_email(sys.argv[1])
