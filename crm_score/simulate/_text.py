"""Short English ticket texts whose tone follows the complaint flag and the satisfaction score.

>>> opening_text("delivery", True, 0.0, "ord-0000001")
'Order ord-0000001 still has not arrived and nobody answers my emails. This is unacceptable.'
>>> closing_text(5, 0.0)
'Thank you, that was quick and very helpful!'
"""

from __future__ import annotations

__all__ = ["TICKET_CATEGORIES", "closing_text", "opening_text"]

TICKET_CATEGORIES: tuple[str, ...] = (
    "account",
    "billing",
    "delivery",
    "product_quality",
    "returns",
    "technical",
    "other",
)

# category -> (neutral openings, negative openings); "{ref}" is "order <id>" or "my order".
_OPENINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "account": (
        ("I would like to update the email address on my account.", "How do I reset my password?"),
        ("I have been locked out of my account for days. Very frustrating.",
         "Your login keeps failing and support never replies. Terrible service."),
    ),
    "billing": (
        ("Could you send me an invoice for {ref}?", "Can I change the payment method for {ref}?"),
        ("I was charged twice for {ref}. Please refund me immediately.",
         "The invoice for {ref} is wrong again. I am really annoyed."),
    ),
    "delivery": (
        ("When will {ref} be delivered?", "Can I change the delivery address for {ref}?"),
        ("{ref} still has not arrived and nobody answers my emails. This is unacceptable.",
         "The parcel for {ref} arrived late and the box was damaged. Very disappointed."),
    ),
    "product_quality": (
        ("Is there a newer model of the item in {ref}?", "Question about the warranty for {ref}."),
        ("The item in {ref} broke after two days. Poor quality.",
         "What I received in {ref} does not match the description at all. Awful."),
    ),
    "returns": (
        ("How do I return part of {ref}?", "I would like a return label for {ref}, please."),
        ("I returned {ref} weeks ago and still have no refund. Disappointed.",
         "Your return process for {ref} is a nightmare. Never again."),
    ),
    "technical": (
        ("The app asks me to update, is that expected?", "How do I connect the printer to wifi?"),
        ("The app crashes every time I try to pay. Useless.",
         "Checkout has been broken all week and I lost my basket twice. Terrible."),
    ),
    "other": (
        ("Do you offer discounts for schools?", "What are your opening hours over the holidays?"),
        ("Your staff were rude to me on the phone. Unacceptable.",
         "I keep getting spam from you after I asked you to stop. Annoying."),
    ),
}  # fmt: skip

_CLOSINGS: dict[int, tuple[str, ...]] = {
    1: ("Still not solved. I am very unhappy and will shop elsewhere.",
        "Terrible experience, nobody listened."),
    2: ("It took far too long and I am disappointed.", "Solved eventually, but poor service."),
    3: ("OK, it is sorted now.", "Fine, thanks."),
    4: ("Thanks, all good now.", "Helpful support, thank you."),
    5: ("Thank you, that was quick and very helpful!", "Excellent service, much appreciated."),
}  # fmt: skip


def opening_text(category: str, complaint: bool, u: float, ref: str | None) -> str:
    """Text of a new ticket; negative phrasing for complaints. ``u`` in [0, 1) picks a variant."""
    options = _OPENINGS[category][1 if complaint else 0]
    text = options[int(u * len(options))].replace("{ref}", f"order {ref}" if ref else "my order")
    return text[0].upper() + text[1:]


def closing_text(satisfaction: int, u: float) -> str:
    """Customer comment left with a satisfaction score (1 = very unhappy ... 5 = very happy)."""
    options = _CLOSINGS[satisfaction]
    return options[int(u * len(options))]
