"""Continents as regular expressions of ISO 3166-1 alpha-2 country codes (the `country` label).

The split follows the continent codes that GeoIP databases report (Russia in Europe; Turkey, the
Caucasus and Kazakhstan in Asia; Central America and the Caribbean in North America).
"""

from __future__ import annotations

_CODES = {
    "Africa": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR "
        "MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW"
    ),
    "Antarctica": "AQ BV GS HM TF",
    "Asia": (
        "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN "
        "MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE"
    ),
    "Europe": (
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU "
        "LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
    ),
    "North America": (
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM "
        "PR SV SX TC TT US VC VG VI"
    ),
    "Oceania": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TL TO TV UM VU WF WS",
    "South America": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}
CONTINENTS: dict[str, tuple[str, ...]] = {name: tuple(codes.split()) for name, codes in _CODES.items()}


def continent_regexes() -> list[tuple[str, str]]:
    """(continent, ``"AO|BF|..."``) pairs, ready for a custom variable."""
    return [(name, "|".join(codes)) for name, codes in CONTINENTS.items()]
