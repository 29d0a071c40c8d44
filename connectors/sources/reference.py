"""Reference lists the validation checks against (loaded once per ingest as tiny temp tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the landing parser, an in-memory DuckDB (landing_parser.py)
    from connectors.sources.landing_parser import Parser

# ISO 4217 active currency codes (2026), excluding funds/precious-metal/testing codes.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
    GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
    KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
    SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED
    VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)


def load_reference_tables(con: Parser) -> None:
    """Temp tables _ref_currencies(code) and _ref_timezones(name) for set-based membership checks."""
    con.execute("create or replace temp table _ref_currencies (code varchar primary key)")
    con.execute("insert into _ref_currencies select unnest(?::varchar[])", [sorted(ISO_4217)])
    # IANA names as DuckDB (ICU) knows them; the same list the staging models convert with.
    con.execute(
        "create or replace temp table _ref_timezones as select distinct name from pg_timezone_names()"
    )
