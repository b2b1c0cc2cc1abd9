{#- Conventions the paper exchange's ground truth follows too (README "Ground-truth conventions"). -#}

{#- A pro-rata share where the total must stay exact: every share but the last (rank_from_last = 1,
    the last position by id) is its base share; the last takes what remains of `amount`. -#}
{% macro remainder_to_last(amount, base_share, partition_by) -%}
    case
        when rank_from_last = 1 then
            {{ amount }} - coalesce(sum(case when rank_from_last > 1 then {{ base_share }} end) over (
                partition by {{ partition_by }}
            ), {{ dec18('0') }})
        else {{ base_share }}
    end
{%- endmacro %}

{#- An amount in another asset converted at a 1m kline's close, rounded half away from zero to 18 decimals
    (SPEC §4.3 other_fees; other-asset income shares alike). -#}
{% macro converted_at_close(amount, close_price) -%}
    round({{ dec18(amount) }} * cast({{ close_price }} as decimal(28, 10)), 18)
{%- endmacro %}
