-- CloudTrail as AWS documents its Athena table (CloudTrailSerde over
-- CloudTrailInputFormat: each {"Records":[...]} file becomes one row per
-- record; requestparameters, responseelements, additionaleventdata and
-- serviceeventdetails are JSON text). Partition projection over the trail's
-- documented layout s3://<bucket>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/:
-- queries filter on "timestamp" ('yyyy/MM/dd') and, where useful, region.
-- ${TrailBucket} and ${AccountId} are filled in by the stack / the local
-- engine; ${region} and ${timestamp} belong to partition projection.
CREATE EXTERNAL TABLE cloudtrail_logs (
    eventversion string,
    useridentity struct<
        type: string,
        principalid: string,
        arn: string,
        accountid: string,
        invokedby: string,
        accesskeyid: string,
        username: string,
        onbehalfof: struct<
            userid: string,
            identitystorearn: string>,
        sessioncontext: struct<
            attributes: struct<
                mfaauthenticated: string,
                creationdate: string>,
            sessionissuer: struct<
                type: string,
                principalid: string,
                arn: string,
                accountid: string,
                username: string>,
            ec2roledelivery: string,
            webidfederationdata: struct<
                federatedprovider: string,
                attributes: map<string, string>>,
            sourceidentity: string>>,
    eventtime string,
    eventsource string,
    eventname string,
    awsregion string,
    sourceipaddress string,
    useragent string,
    errorcode string,
    errormessage string,
    requestparameters string,
    responseelements string,
    additionaleventdata string,
    requestid string,
    eventid string,
    readonly string,
    resources array<struct<
        arn: string,
        accountid: string,
        type: string>>,
    eventtype string,
    apiversion string,
    recipientaccountid string,
    serviceeventdetails string,
    sharedeventid string,
    vpcendpointid string,
    vpcendpointaccountid string,
    eventcategory string,
    addendum struct<
        reason: string,
        updatedfields: string,
        originalrequestid: string,
        originaleventid: string>,
    sessioncredentialfromconsole string,
    edgedevicedetails string,
    tlsdetails struct<
        tlsversion: string,
        ciphersuite: string,
        clientprovidedhostheader: string>
)
COMMENT 'CloudTrail management events of the trail bucket, partitioned by region and day'
PARTITIONED BY (region string, `timestamp` string)
ROW FORMAT SERDE 'com.amazon.emr.hive.serde.CloudTrailSerde'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://${TrailBucket}/AWSLogs/${AccountId}/CloudTrail/'
TBLPROPERTIES (
    'projection.enabled' = 'true',
    'projection.region.type' = 'enum',
    'projection.region.values' = 'us-east-1,us-east-2,us-west-1,us-west-2,af-south-1,ap-east-1,ap-south-1,ap-south-2,ap-southeast-1,ap-southeast-2,ap-southeast-3,ap-southeast-4,ap-northeast-1,ap-northeast-2,ap-northeast-3,ca-central-1,ca-west-1,eu-central-1,eu-central-2,eu-west-1,eu-west-2,eu-west-3,eu-south-1,eu-south-2,eu-north-1,il-central-1,me-south-1,me-central-1,sa-east-1',
    'projection.timestamp.type' = 'date',
    'projection.timestamp.format' = 'yyyy/MM/dd',
    'projection.timestamp.range' = 'NOW-3YEARS,NOW+1DAYS',
    'projection.timestamp.interval' = '1',
    'projection.timestamp.interval.unit' = 'DAYS',
    'storage.location.template' = 's3://${TrailBucket}/AWSLogs/${AccountId}/CloudTrail/${region}/${timestamp}/',
    'classification' = 'cloudtrail'
)
