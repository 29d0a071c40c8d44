-- Registrations (latest profile row per user) renamed to the contract. Emails are lower-cased and
-- trimmed (the suppression list keys on lower-case emails); customer_type is normalised to
-- individual|business (b2c/consumer and b2b/company are accepted spellings from the app).
with source as (

    select * from {{ source('raw', 'raw_registrations') }}

), renamed as (

    select
        user_id,
        registered_at,
        updated_at,
        nullif(lower(trim(email)), '') as email,
        nullif(trim(phone), '') as phone,
        first_name,
        country,
        city,
        locale,
        timezone,
        acquisition_channel,
        case lower(trim(customer_type))
            when 'b2b' then 'business'
            when 'company' then 'business'
            when 'b2c' then 'individual'
            when 'consumer' then 'individual'
            else lower(trim(customer_type))
        end as customer_type,
        company_name,
        industry,
        employees,
        email_opt_in,
        sms_opt_in,
        push_opt_in,
        nullif(trim(push_token), '') as push_token,
        birth_date,
        gender,
        contract_end_date,
        nullif(trim(referred_by), '') as referred_by,
        _source_file,
        _loaded_at

    from source

)

select * from renamed
