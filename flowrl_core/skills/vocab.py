"""Names skill files may use, from Craftax-Classic and Craftax.

Validation checks every ``requires``/``consumes``/``gains`` key against this vocabulary so a typo
(``wod``) is caught before anything trains, with the close match suggested.  Whether a given
environment actually exposes a name is checked again when the trainer compiles the predicates.
"""

from __future__ import annotations

CLASSIC_ITEMS: tuple[str, ...] = (
    "wood", "stone", "coal", "iron", "diamond", "sapling", "wood_pickaxe", "stone_pickaxe",
    "iron_pickaxe", "wood_sword", "stone_sword", "iron_sword",
)

# Craftax (full) keeps tiered tools as levels and adds these.
CRAFTAX_EXTRA_ITEMS: tuple[str, ...] = (
    "pickaxe", "sword", "bow", "arrows", "armour", "torches", "ruby", "sapphire", "potions",
    "books",
)

CLASSIC_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_wood", "place_table", "eat_cow", "collect_sapling", "collect_drink",
    "make_wood_pickaxe", "make_wood_sword", "place_plant", "defeat_zombie", "collect_stone",
    "place_stone", "eat_plant", "defeat_skeleton", "make_stone_pickaxe", "make_stone_sword",
    "wake_up", "place_furnace", "collect_coal", "collect_iron", "collect_diamond",
    "make_iron_pickaxe", "make_iron_sword",
)

CRAFTAX_EXTRA_ACHIEVEMENTS: tuple[str, ...] = (
    "make_arrow", "make_torch", "place_torch", "collect_sapphire", "collect_ruby",
    "make_diamond_pickaxe", "make_diamond_sword", "make_iron_armour", "make_diamond_armour",
    "enter_gnomish_mines", "enter_dungeon", "enter_sewers", "enter_vault", "enter_troll_mines",
    "enter_fire_realm", "enter_ice_realm", "enter_graveyard", "defeat_gnome_warrior",
    "defeat_gnome_archer", "defeat_orc_solider", "defeat_orc_mage", "defeat_lizard",
    "defeat_kobold", "defeat_knight", "defeat_archer", "defeat_troll", "defeat_deep_thing",
    "defeat_pigman", "defeat_fire_elemental", "defeat_frost_troll", "defeat_ice_elemental",
    "damage_necromancer", "defeat_necromancer", "eat_bat", "eat_snail", "find_bow", "fire_bow",
    "learn_fireball", "cast_fireball", "learn_iceball", "cast_iceball",
)

# Block types ``near:`` keys may name (Craftax's BlockType, lower-cased; the gridworld uses the same names).
CLASSIC_BLOCKS: tuple[str, ...] = (
    "grass", "water", "stone", "tree", "wood", "path", "coal", "iron", "diamond", "crafting_table",
    "furnace", "sand", "lava", "plant", "ripe_plant",
)

CRAFTAX_EXTRA_BLOCKS: tuple[str, ...] = (
    "wall", "darkness", "wall_moss", "stalagmite", "sapphire", "ruby", "chest", "fountain", "fire_grass",
    "ice_grass", "gravel", "fire_tree", "ice_shrub", "enchantment_table_fire", "enchantment_table_ice",
    "necromancer", "grave", "grave2", "grave3", "necromancer_vulnerable",
)

ITEMS: frozenset[str] = frozenset(CLASSIC_ITEMS + CRAFTAX_EXTRA_ITEMS)
ACHIEVEMENTS: frozenset[str] = frozenset(CLASSIC_ACHIEVEMENTS + CRAFTAX_EXTRA_ACHIEVEMENTS)
BLOCKS: frozenset[str] = frozenset(CLASSIC_BLOCKS + CRAFTAX_EXTRA_BLOCKS)
